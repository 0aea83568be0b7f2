from setuptools import find_packages, setup

setup(name='hirl_mm', version='0.1.0', packages=find_packages(include=['hirl_mm', 'hirl_mm.*']))
