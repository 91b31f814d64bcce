"""jointspace.objectives"""
