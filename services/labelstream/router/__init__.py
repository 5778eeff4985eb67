"""Router: auto-accepts confident predictions, sends the rest to people."""
