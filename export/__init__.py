"""agrideploy.export"""
