"""cocotb testbenches of the endpoint, and the tools that build and run them."""
