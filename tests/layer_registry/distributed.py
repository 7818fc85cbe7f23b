"""Registry entries of MLX's ``layers/distributed.py`` family."""
