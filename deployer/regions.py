"""Every place a config value may name, as data: shared by config validation (which refuses any
other before an API call) and the emulator (which refuses the rest the way Google does).

The deployment's region hosts the Cloud Run service and jobs, the Cloud SQL instance, the
Artifact Registry repository and the builds. Cloud SQL and Artifact Registry are offered in every
Google Cloud region, so the Cloud Run list is the one that decides.
djdeploy names no zone (Cloud SQL picks one in the region).
"""

CLOUD_RUN_REGIONS: frozenset[str] = frozenset(
    [
        "africa-south1",
        "asia-east1",
        "asia-east2",
        "asia-northeast1",
        "asia-northeast2",
        "asia-northeast3",
        "asia-south1",
        "asia-south2",
        "asia-southeast1",
        "asia-southeast2",
        "australia-southeast1",
        "australia-southeast2",
        "europe-central2",
        "europe-north1",
        "europe-north2",
        "europe-southwest1",
        "europe-west1",
        "europe-west2",
        "europe-west3",
        "europe-west4",
        "europe-west6",
        "europe-west8",
        "europe-west9",
        "europe-west10",
        "europe-west12",
        "me-central1",
        "me-central2",
        "me-west1",
        "northamerica-northeast1",
        "northamerica-northeast2",
        "northamerica-south1",
        "southamerica-east1",
        "southamerica-west1",
        "us-central1",
        "us-east1",
        "us-east4",
        "us-east5",
        "us-south1",
        "us-west1",
        "us-west2",
        "us-west3",
        "us-west4",
    ]
)

#: The short codes Cloud Run puts in a service's older ``<service>-<hash>-<code>.a.run.app``
#: host, by region (a region not listed: its code is not known here; the emulator makes one up)
RUN_APP_CODES: dict[str, str] = {
    "us-central1": "uc",
    "us-east1": "ue",
    "us-east4": "uk",
    "us-west1": "uw",
    "europe-west1": "ew",
    "europe-west2": "nw",
    "europe-west3": "ey",
    "europe-west4": "ez",
    "europe-north1": "lz",
    "asia-northeast1": "an",
    "asia-east1": "de",
    "asia-southeast1": "as",
    "australia-southeast1": "ts",
}

#: Cloud Storage multi-regions (bucket locations are case-insensitive; Google answers upper case)
STORAGE_MULTI_REGIONS: frozenset[str] = frozenset(["ASIA", "EU", "US"])

#: Cloud Storage predefined dual-regions: ASIA1 (Tokyo, Osaka), EUR4 (Finland, Netherlands),
#: EUR5 (Belgium, London), EUR7 (London, Frankfurt), EUR8 (Frankfurt, Zurich), NAM4 (Iowa,
#: South Carolina). A configurable dual-region needs a placement, which media.location cannot say.
STORAGE_DUAL_REGIONS: frozenset[str] = frozenset(["ASIA1", "EUR4", "EUR5", "EUR7", "EUR8", "NAM4"])

#: Cloud Storage regions djdeploy accepts for the media bucket: the Cloud Run regions (Cloud
#: Storage has a region in each; a bucket elsewhere would be far from the service mounting it).
STORAGE_REGIONS: frozenset[str] = CLOUD_RUN_REGIONS

#: The regions whose Cloud Run offers domain mappings (Google's "Mapping custom domains" page,
#: Limitations; the feature is in Preview there). Elsewhere a custom domain takes a global
#: external Application Load Balancer with a serverless NEG (docs/configuration.md).
DOMAIN_MAPPING_REGIONS: frozenset[str] = frozenset(
    [
        "asia-east1",
        "asia-northeast1",
        "asia-southeast1",
        "europe-north1",
        "europe-west1",
        "europe-west4",
        "us-central1",
        "us-east1",
        "us-east4",
        "us-west1",
    ]
)
