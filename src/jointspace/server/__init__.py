"""jointspace.server"""
