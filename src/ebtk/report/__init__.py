"""Reports: plots (matplotlib, Agg) and HTML. Import submodules directly; this package stays light."""
