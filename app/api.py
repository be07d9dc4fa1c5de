"""Placeholder: the admin API lands in a later commit."""

from flask import Flask


def init_app(app: Flask) -> None:
    return None
