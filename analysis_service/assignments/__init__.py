"""The structure discovered in each class and the images assigned to it (the write path)."""
