"""jointspace.eval"""
