"""sonoedge.train: datasets, the phantom simulator, networks, losses and trainers (needs [train]).

Importing this package does not import torch; the modules that need it import it themselves.
"""
