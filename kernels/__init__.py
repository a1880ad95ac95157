"""agrideploy.kernels"""
