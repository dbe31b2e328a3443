"""GPU capacity as platform engineers declare it by hand, where no node group lists instance types: a custom-AMI
node group whose launch template sets p5en.48xlarge (64 nodes: 512 GPUs), and self-managed gr6 nodes."""

import pulumi_aws as aws

encrypted_root: list[aws.ec2.LaunchTemplateBlockDeviceMappingArgsDict] = [
    {"device_name": "/dev/xvda", "ebs": {"volume_size": 200, "encrypted": "true"}}
]
template = aws.ec2.LaunchTemplate(
    "h200-template",
    name="h200-template",
    image_id="ami-0123456789abcdef0",
    instance_type="p5en.48xlarge",
    metadata_options={"http_tokens": "required"},
    block_device_mappings=encrypted_root,
)
aws.eks.NodeGroup(
    "h200-nodes",
    cluster_name="modelplane",
    node_role_arn="arn:aws:iam::123456789012:role/node",
    subnet_ids=["subnet-1"],
    ami_type="CUSTOM",
    launch_template={"name": template.name, "version": "1"},
    scaling_config={"min_size": 1, "max_size": 64, "desired_size": 1},
)
graphics_template = aws.ec2.LaunchTemplate(
    "graphics-template",
    name="graphics-template",
    instance_type="gr6.8xlarge",
    metadata_options={"http_tokens": "required"},
    block_device_mappings=encrypted_root,
    user_data="IyEvYmluL2Jhc2gKbm9kZWFkbSBpbml0Cg==",
)
aws.autoscaling.Group(
    "graphics-nodes",
    min_size=1,
    max_size=8,
    vpc_zone_identifiers=["subnet-1"],
    launch_template={"name": graphics_template.name},
    tags=[{"key": "kubernetes.io/cluster/modelplane", "value": "owned", "propagate_at_launch": True}],
)
