"""One trainer for every task and objective."""
