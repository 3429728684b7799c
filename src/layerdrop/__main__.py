"""`python -m layerdrop …` (and `accelerate launch -m layerdrop run …` for several GPUs)."""

from layerdrop.cli import main

main()
