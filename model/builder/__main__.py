"""``python -m model.builder``: the bundled checkpoint to served artifacts (``model.builder.artifacts``)."""

import logging

from model.builder.artifacts import get_args_parser, main

logging.basicConfig(level=logging.INFO)
main(get_args_parser().parse_args())
