"""Hard-IP adapters: what puts the endpoint in front of a hard IP other than
UltraScale+'s, whose interface the core speaks natively.
"""
