#!/usr/bin/env python3
"""Test-bed administration that object_store cannot do: create buckets and containers, and set up
moto's real (IAM) authentication. Run with the test-bed venv's python; prints JSON on stdout.

    storage_admin.py s3-bucket ENDPOINT BUCKET [--ca FILE]
    storage_admin.py s3-auth ENDPOINT BUCKET       # bucket + IAM user with an access key, then auth on
    storage_admin.py azure-container ENDPOINT ACCOUNT KEY CONTAINER
    storage_admin.py gcs-bucket ENDPOINT BUCKET
"""
import argparse, json, sys, urllib.request

# moto accepts any credentials while its authentication is off.
BOOTSTRAP = dict(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")


def boto(service, endpoint, ca=None):
    import boto3
    return boto3.client(service, endpoint_url=endpoint, verify=ca if ca else True, **BOOTSTRAP)


def s3_bucket(a):
    boto("s3", a.endpoint, a.ca).create_bucket(Bucket=a.bucket)
    return {"bucket": a.bucket}


def s3_auth(a):
    boto("s3", a.endpoint).create_bucket(Bucket=a.bucket)
    iam = boto("iam", a.endpoint)
    iam.create_user(UserName="cairn")
    iam.put_user_policy(UserName="cairn", PolicyName="all", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
    key = iam.create_access_key(UserName="cairn")["AccessKey"]
    req = urllib.request.Request(a.endpoint + "/moto-api/reset-auth", data=b"0", method="POST",
                                 headers={"Content-Type": "text/plain"})
    urllib.request.urlopen(req).read()
    return {"bucket": a.bucket, "access_key_id": key["AccessKeyId"],
            "secret_access_key": key["SecretAccessKey"]}


def azure_container(a):
    from azure.storage.blob import BlobServiceClient
    svc = BlobServiceClient(account_url=a.endpoint, credential={"account_name": a.account, "account_key": a.key})
    svc.create_container(a.container)
    return {"container": a.container}


def gcs_bucket(a):
    req = urllib.request.Request(a.endpoint + "/storage/v1/b", data=json.dumps({"name": a.bucket}).encode(),
                                 method="POST", headers={"Content-Type": "application/json"})
    urllib.request.urlopen(req).read()
    return {"bucket": a.bucket}


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("s3-bucket"); s.add_argument("endpoint"); s.add_argument("bucket"); s.add_argument("--ca")
    s.set_defaults(fn=s3_bucket)
    s = sub.add_parser("s3-auth"); s.add_argument("endpoint"); s.add_argument("bucket"); s.set_defaults(fn=s3_auth)
    s = sub.add_parser("azure-container")
    for n in ("endpoint", "account", "key", "container"): s.add_argument(n)
    s.set_defaults(fn=azure_container)
    s = sub.add_parser("gcs-bucket"); s.add_argument("endpoint"); s.add_argument("bucket"); s.set_defaults(fn=gcs_bucket)
    a = p.parse_args()
    json.dump(a.fn(a), sys.stdout)


if __name__ == "__main__":
    main()
