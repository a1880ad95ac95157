"""Reports from results documents: tables (pure), plots (matplotlib, lazy) and their Markdown / HTML / CSV rendering."""
