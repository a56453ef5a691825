"""Spec compiler: text -> validated spec -> checked graph -> torch.fx.GraphModule.

Loading and checking never import torch; only lowering does.
"""
