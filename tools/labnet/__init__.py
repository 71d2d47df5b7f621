"""The netaccess lab: a whole site in network namespaces, driven by `tools/lab` and pytest.

from tools.labnet import Lab
lab = Lab(prefix="na-1a2b3c-", endpoints=3, workdir=tmp_path / "lab")
lab.up(appliance=False)
leases = lab.wait_for_leases(30)
lab.down()
"""

from tools.labnet.errors import LabError
from tools.labnet.lease import Lease
from tools.labnet.topology import Lab

__all__ = ["Lab", "LabError", "Lease"]
