"""Which input changes make the engine replace a resource (delete and create) rather than update it in place.

The providers decide this at preview time, from tables the Python SDKs do not ship: pulumi-aws from the
Terraform AWS provider's `ForceNew: true` schema fields, pulumi-kubernetes from its `forceNew` table
(provider/pkg/provider/diff.go). An offline plan has no provider, so these are those tables, for the
resource types the platform creates, in the plan's camelCase input paths. Sources, read 2025:
terraform-provider-aws internal/service/{eks/cluster.go, eks/node_group.go, ec2/*.go, iam/*.go, ...};
pulumi-kubernetes provider/pkg/provider/diff.go. `modelplane preview ENV` asks the real providers.
"""

from __future__ import annotations

from collections.abc import Iterable

_AWS: dict[str, tuple[str, ...]] = {
    # vpcConfig.subnetIds is updatable since EKS's UpdateClusterConfig takes subnets (the AWS provider followed).
    "aws:eks/cluster:Cluster": (
        "name",
        "roleArn",
        "bootstrapSelfManagedAddons",
        "accessConfig.bootstrapClusterCreatorAdminPermissions",
        "kubernetesNetworkConfig.ipFamily",
        "kubernetesNetworkConfig.serviceIpv4Cidr",
        "remoteNetworkConfig",
        "outpostConfig",
    ),
    # scalingConfig, labels, taints, updateConfig, version, releaseVersion and the launch template's version update.
    "aws:eks/nodeGroup:NodeGroup": (
        "amiType",
        "capacityType",
        "clusterName",
        "diskSize",
        "instanceTypes",
        "launchTemplate.id",
        "launchTemplate.name",
        "nodeGroupName",
        "nodeGroupNamePrefix",
        "nodeRoleArn",
        "remoteAccess",
        "subnetIds",
    ),
    "aws:eks/addon:Addon": ("addonName", "clusterName"),
    "aws:eks/accessEntry:AccessEntry": ("clusterName", "principalArn", "type"),
    "aws:eks/podIdentityAssociation:PodIdentityAssociation": ("clusterName", "namespace", "serviceAccount"),
    # Any other change to a launch template makes a new version of it: an update.
    "aws:ec2/launchTemplate:LaunchTemplate": ("name", "namePrefix"),
    "aws:ec2/vpc:Vpc": ("cidrBlock", "ipv4IpamPoolId", "ipv4NetmaskLength"),
    "aws:ec2/subnet:Subnet": ("availabilityZone", "availabilityZoneId", "cidrBlock", "vpcId", "outpostArn"),
    "aws:ec2/eip:Eip": ("domain", "networkBorderGroup", "publicIpv4Pool", "address"),
    "aws:ec2/internetGateway:InternetGateway": (),
    "aws:ec2/natGateway:NatGateway": ("allocationId", "connectivityType", "privateIp", "subnetId"),
    "aws:ec2/route:Route": (
        "routeTableId",
        "destinationCidrBlock",
        "destinationIpv6CidrBlock",
        "destinationPrefixListId",
    ),
    "aws:ec2/routeTable:RouteTable": ("vpcId",),
    "aws:ec2/routeTableAssociation:RouteTableAssociation": ("subnetId", "gatewayId"),
    "aws:ec2/vpcEndpoint:VpcEndpoint": ("serviceName", "vpcEndpointType", "vpcId"),
    "aws:ec2/securityGroup:SecurityGroup": ("name", "namePrefix", "description", "vpcId"),
    "aws:ec2/securityGroupRule:SecurityGroupRule": (
        "securityGroupId",
        "type",
        "protocol",
        "fromPort",
        "toPort",
        "cidrBlocks",
        "sourceSecurityGroupId",
        "self",
    ),
    "aws:ec2/tag:Tag": ("key", "resourceId"),
    "aws:ec2/placementGroup:PlacementGroup": ("name", "strategy", "partitionCount", "spreadLevel"),
    # The VPC rule resources (the provider's framework ones) move to another group only by replacement.
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": ("securityGroupId",),
    "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": ("securityGroupId",),
    "aws:iam/role:Role": ("name", "namePrefix", "path"),
    "aws:iam/rolePolicy:RolePolicy": ("name", "namePrefix", "role"),
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": ("policyArn", "role"),
    "aws:iam/openIdConnectProvider:OpenIdConnectProvider": ("url",),
    "aws:kms/key:Key": ("customerMasterKeySpec", "keyUsage", "multiRegion", "xksKeyId", "customKeyStoreId"),
    "aws:kms/alias:Alias": ("name", "namePrefix"),
    "aws:kms/keyPolicy:KeyPolicy": ("keyId",),
    "aws:s3/bucket:Bucket": ("bucket", "bucketPrefix", "objectLockEnabled"),
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration": ("bucket", "expectedBucketOwner"),
    "aws:s3/bucketOwnershipControls:BucketOwnershipControls": ("bucket",),
    "aws:s3/bucketPolicy:BucketPolicy": ("bucket",),
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": ("bucket",),
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": (
        "bucket",
        "expectedBucketOwner",
    ),
    "aws:s3/bucketVersioning:BucketVersioning": ("bucket", "expectedBucketOwner"),
    "aws:sqs/queue:Queue": ("name", "namePrefix", "fifoQueue"),
    "aws:sqs/queuePolicy:QueuePolicy": ("queueUrl",),
    "aws:cloudwatch/logGroup:LogGroup": ("name", "namePrefix", "logGroupClass"),
    "aws:cloudwatch/eventRule:EventRule": ("name", "namePrefix", "eventBusName"),
    "aws:cloudwatch/eventTarget:EventTarget": ("rule", "targetId", "eventBusName"),
    "aws:ecr/repository:Repository": ("name", "encryptionConfigurations"),
    "aws:ecr/lifecyclePolicy:LifecyclePolicy": ("repository",),
    "aws:fsx/lustreFileSystem:LustreFileSystem": (
        "deploymentType",
        "subnetIds",
        "importPath",
        "exportPath",
        "kmsKeyId",
        "perUnitStorageThroughput",
        "securityGroupIds",
    ),
    "aws:fsx/dataRepositoryAssociation:DataRepositoryAssociation": (
        "fileSystemId",
        "fileSystemPath",
        "dataRepositoryPath",
        "batchImportMetaDataOnCreate",
    ),
}

# pulumi-kubernetes: every object is replaced when its name or namespace changes; these kinds also on these paths.
_KUBERNETES_METADATA = ("metadata.name", "metadata.namespace")
_SELECTOR = ("spec.selector",)
_KUBERNETES: dict[str, tuple[str, ...]] = {
    "apps/v1:Deployment": _SELECTOR,
    "apps/v1:DaemonSet": _SELECTOR,
    "apps/v1:StatefulSet": (
        "spec.podManagementPolicy",
        "spec.revisionHistoryLimit",
        "spec.selector",
        "spec.serviceName",
        "spec.volumeClaimTemplates",
    ),
    "batch/v1:Job": ("spec.completions", "spec.parallelism", "spec.selector", "spec.template"),
    # ConfigMaps and Secrets are immutable unless the provider enables mutation (modelplane's does not).
    "core/v1:ConfigMap": ("data", "binaryData"),
    "core/v1:Secret": ("type", "data", "stringData"),
    "core/v1:Service": ("spec.clusterIP",),
    "core/v1:PersistentVolumeClaim": ("spec",),
    "core/v1:PersistentVolume": ("spec.csi", "spec.nfs", "spec.hostPath", "spec.local", "spec.awsElasticBlockStore"),
    "core/v1:ResourceQuota": ("spec.scopes",),
    "rbac.authorization.k8s.io/v1:ClusterRoleBinding": ("roleRef",),
    "rbac.authorization.k8s.io/v1:RoleBinding": ("roleRef",),
    "storage.k8s.io/v1:StorageClass": ("parameters", "provisioner"),
    # Helm cannot rename a release or move it to another namespace.
    "helm.sh/v3:Release": ("name", "namespace"),
}


def replace_on_change_fields(resource_type: str) -> tuple[str, ...]:
    """The input paths of `resource_type` whose change replaces the resource (empty when none is known)."""
    if resource_type in _AWS:
        return _AWS[resource_type]
    if resource_type.startswith("kubernetes:") and not resource_type.startswith("kubernetes:helm.sh/"):
        return _KUBERNETES_METADATA + _KUBERNETES.get(resource_type.removeprefix("kubernetes:"), ())
    if resource_type.startswith("kubernetes:"):
        return _KUBERNETES.get(resource_type.removeprefix("kubernetes:"), ())
    return ()


def replacing_paths(resource_type: str, changed_paths: Iterable[str]) -> tuple[str, ...]:
    """Of `changed_paths` (flattened, `a.b[0].c`), those that replace a resource of `resource_type`."""
    fields = replace_on_change_fields(resource_type)
    return tuple(path for path in changed_paths if any(_under(path, field) for field in fields))


def known_types() -> tuple[str, ...]:
    """The AWS types the table covers (every Kubernetes type is covered by its metadata rule)."""
    return tuple(_AWS)


def _under(path: str, field: str) -> bool:
    return path == field or path.startswith((f"{field}.", f"{field}["))
