"""mammoflow library: standardize breast-imaging data, train four stages, evaluate and predict.

Research software, not a medical device.
"""

__version__ = "0.1.0"
