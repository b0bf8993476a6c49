"""mammoflow library: standardize breast-imaging data, train its stages, predict with the chain, evaluate it.

Research software, not a medical device.
"""

__version__ = "0.1.0"
