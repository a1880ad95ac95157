"""agrideploy.optimize"""
