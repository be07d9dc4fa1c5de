"""Answers to client requests, one module per family (orders, account, contracts, market data,
historical data, connection), the streamed updates they share with the router (feeds), and the
dispatch table (registry, dispatch)."""
