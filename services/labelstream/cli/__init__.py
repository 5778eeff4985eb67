"""The labelstream command line: local stack, projects, items, progress, export, demo."""
