"""CrossPoint: self-supervised cross-modal contrastive learning for point clouds (training side).

`crosspoint.geometry` is torch-free and shared by training, the gateway and the batch client.
Everything that needs torch (models, training, checkpoints) is imported lazily by its users.
"""

__version__ = "0.1.0"
