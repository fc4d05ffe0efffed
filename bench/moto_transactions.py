"""What one TransactWriteItems costs the local stack as a table grows: moto as shipped (it deep-copies every
table a transaction touches) beside moto with sandboxcp.local.moto_transactions (it backs up the touched
items only), each in a fresh interpreter of the same run. DynamoDB's own cost does not grow with the table.

    python3 bench/moto_transactions.py [--runs 20]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIZES = (100, 1000, 3000)

_PROBE = """
import json, statistics, sys, time
import boto3
from moto import mock_aws
sys.path.insert(0, {layers!r})
if {patched}:
    from sandboxcp.local import moto_transactions
    moto_transactions.install()
out = {{}}
with mock_aws():
    ddb = boto3.client("dynamodb", region_name="us-east-1")
    ddb.create_table(TableName="t", KeySchema=[{{"AttributeName": "pk", "KeyType": "HASH"}}],
                     AttributeDefinitions=[{{"AttributeName": "pk", "AttributeType": "S"}}],
                     BillingMode="PAY_PER_REQUEST")
    total = 0
    for size in {sizes!r}:
        while total < size:  # items the size of a small execution record
            ddb.put_item(TableName="t", Item={{"pk": {{"S": f"i{{total}}"}}, "code": {{"S": "x" * 200}}}})
            total += 1
        times = []
        for k in range({runs}):
            started = time.perf_counter()
            ddb.transact_write_items(TransactItems=[
                {{"Put": {{"TableName": "t", "Item": {{"pk": {{"S": f"new{{size}}-{{k}}"}}}}}}}},
                {{"Update": {{"TableName": "t", "Key": {{"pk": {{"S": "i1"}}}},
                             "UpdateExpression": "SET n = :k",
                             "ExpressionAttributeValues": {{":k": {{"N": str(k)}}}}}}}},
            ])
            times.append((time.perf_counter() - started) * 1000)
        out[size] = statistics.median(times)
print(json.dumps(out))
"""


def medians(patched: bool, runs: int) -> dict[str, float]:
    code = _PROBE.format(layers=str(ROOT / "layers" / "python"), patched=patched, sizes=SIZES, runs=runs)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return dict(json.loads(done.stdout))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    shipped, local = medians(False, args.runs), medians(True, args.runs)
    print(f"TransactWriteItems (a put and an update), median of {args.runs} per table size\n")
    print(f"{'items in the table':>20}{'moto ms':>12}{'local stack ms':>16}{'ratio':>8}")
    for size in SIZES:
        a, b = shipped[str(size)], local[str(size)]
        print(f"{size:>20}{a:>12.2f}{b:>16.2f}{b / a:>8.2f}")


if __name__ == "__main__":
    main()
