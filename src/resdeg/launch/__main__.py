"""`python -m resdeg.launch`: the Makefile's LAUNCHER=auto (``parallel`` or ``local``)."""

from resdeg.launch import default_launcher

print(default_launcher())
