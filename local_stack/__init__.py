"""The local stack: the whole pipeline on this machine, without an AWS account."""
