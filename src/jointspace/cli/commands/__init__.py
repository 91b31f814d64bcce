"""One module per ``jointspace`` subcommand."""
