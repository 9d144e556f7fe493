"""``python -m pacs``: the receiver and its uploader, configured by environment variables (pacs.config)."""

from __future__ import annotations

import logging

import boto3

from pacs.config import ReceiverConfig
from pacs.receiver import Receiver
from pacs.spool import Spool
from pacs.uploader import S3Store, Uploader


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    config = ReceiverConfig.from_env()
    spool = Spool(config.spool)
    uploader = Uploader(spool, S3Store(boto3.client("s3"), config.bucket)).start()
    receiver = Receiver(config, spool, uploader)
    try:
        receiver.start(block=True)
    finally:
        uploader.stop()


if __name__ == "__main__":
    main()
