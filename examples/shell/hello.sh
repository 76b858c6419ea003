#!/bin/sh
# The sample app: says where it runs and what the launcher gave it.
echo "Hello from a cnb-built image!"
echo "running as uid $(id -u) in $(pwd)"
