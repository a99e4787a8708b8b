"""The vagrant backend (libvirt VMs): backend.py the Backend; host.py what it needs of this host (probes);
run.py running `vagrant up`, and what ssh to the VMs needs; libvirt.py the host's libvirt; render.py the
Vagrantfile; box.py and boxdata.py the lab's own box."""
