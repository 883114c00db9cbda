"""Create the cluster's security group: SSH from one network, the nodes to each other, nothing
else. ``cluster/gpu.yaml`` references it by id (``SecurityGroupIds``), because a group that
Ray's AWS launcher creates itself always gets SSH from 0.0.0.0/0 besides the config's rules.

    python cluster/security_group.py --region us-west-2 --ssh-cidr 198.51.100.7/32

prints the group's id (``sg-…``): put it in both ``SecurityGroupIds`` of cluster/gpu.yaml.
Running it again finds the group and changes nothing. Needs boto3 (the ``cluster`` extra) and
AWS credentials allowed to manage EC2 security groups.
"""

from __future__ import annotations

import argparse
import ipaddress
import sys

NAME = "betavae-frontier-ssh-only"
DESCRIPTION = "betavae-frontier: SSH from one network, all traffic between the cluster's nodes"


def ssh_cidr(text: str) -> str:
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an IP network: {text!r}") from None
    if network.prefixlen == 0:
        raise argparse.ArgumentTypeError(
            f"{text!r} is the whole internet; allowed: your own address or range, e.g. "
            "198.51.100.7/32"
        )
    return str(network)


def ensure_group(ec2, cidr: str, vpc_id: str | None = None, name: str = NAME) -> str:
    """The group's id: found by name in the VPC (default VPC unless given), else created with
    exactly two inbound rules: every protocol from the group itself, and 22/tcp from ``cidr``."""
    if vpc_id is None:
        vpcs = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"]
        if not vpcs:
            raise SystemExit("no default VPC in this region: pass --vpc-id")
        vpc_id = vpcs[0]["VpcId"]
    found = ec2.describe_security_groups(
        Filters=[{"Name": "group-name", "Values": [name]}, {"Name": "vpc-id", "Values": [vpc_id]}]
    )["SecurityGroups"]
    if found:
        return found[0]["GroupId"]
    group = ec2.create_security_group(GroupName=name, Description=DESCRIPTION, VpcId=vpc_id)
    group_id = group["GroupId"]
    ec2.authorize_security_group_ingress(
        GroupId=group_id,
        IpPermissions=[
            {"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": group_id}]},
            {
                "IpProtocol": "tcp",
                "FromPort": 22,
                "ToPort": 22,
                "IpRanges": [{"CidrIp": cidr, "Description": "SSH for ray up/attach"}],
            },
        ],
    )
    return group_id


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--region", required=True)
    parser.add_argument("--ssh-cidr", type=ssh_cidr, required=True, metavar="CIDR")
    parser.add_argument("--vpc-id", default=None, help="default: the region's default VPC")
    args = parser.parse_args(argv)
    import boto3

    print(ensure_group(boto3.client("ec2", region_name=args.region), args.ssh_cidr, args.vpc_id))
    return 0


if __name__ == "__main__":
    sys.exit(main())
