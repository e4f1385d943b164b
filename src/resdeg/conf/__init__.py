"""The Hydra configs of resdeg (a package so that Hydra finds them inside an installed wheel)."""
