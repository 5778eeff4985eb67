"""labelstream: a model labels every item, calibrated confidence routes, people verify."""
