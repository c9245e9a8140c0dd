"""The node agent (Hypernetes' kubelet): makes a machine a Node and runs the pods
bound to it on the runtime. Map of the modules and the trust model: docs/NODE.md."""
