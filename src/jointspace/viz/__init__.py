"""jointspace.viz"""
