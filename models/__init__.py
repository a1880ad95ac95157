"""agrideploy.models"""
