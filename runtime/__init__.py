"""agrideploy.runtime"""
