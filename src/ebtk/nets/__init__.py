"""Networks: energy and score models, registered under kind "net". Import submodules directly."""
