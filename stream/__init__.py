"""hotpath: escalate the misconfigurations that live traffic exercises."""
