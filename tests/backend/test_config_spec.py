import json

from backend.job_spec import SPEC_PATH
from pruning.config import config_spec


def test_the_api_validates_against_the_engines_current_config():
    # If this fails: pruneboard config-spec > backend/job_config_spec.json
    assert json.loads(SPEC_PATH.read_text()) == config_spec()
