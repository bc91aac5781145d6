"""Wire protocols, as parse / serialize functions over typed messages."""
