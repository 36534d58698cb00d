"""Evaluation: metrics (`metrics`), datasets with ground truth (`datasets`), running a pipeline over a dataset
(`runner`) and the reports it writes (`report`). See docs/evaluation.md."""
