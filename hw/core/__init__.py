"""Gateware blocks of the endpoint, composed by hw.bar_endpoint.
"""
