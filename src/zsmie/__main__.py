"""`python -m zsmie ...` (and `accelerate launch -m zsmie ...`): the zsmie command."""

from zsmie.cli import app

app(prog_name="zsmie")
