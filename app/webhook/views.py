"""Placeholder: the webhook view lands in the next commit."""

from flask import Flask


def init_app(app: Flask) -> None:
    return None
