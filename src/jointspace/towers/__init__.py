"""jointspace.towers"""
