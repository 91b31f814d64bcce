"""jointspace.train"""
