"""Registry entries of MLX's ``layers/recurrent.py`` family."""
