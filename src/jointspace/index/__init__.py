"""jointspace.index"""
