"""Who the leads are: channel, campaign, keyword, region, industry, size, budget, contact title.

Each lead also gets a latent quality (its conversion logit before rep, speed and engagement
effects), an engagement propensity and a value index in (0, 1) that measures how big a deal it
is. The three stay in the ground truth and never reach the canonical tables.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from data.synthetic import catalog
from data.synthetic.config import GeneratorConfig
from data.synthetic.randomness import CounterRandom, Stream

MISSING = -1
VALUE_BUDGET_REFERENCE = 40_000.0  # CNY; a budget of this size adds nothing to the value index
UNKNOWN_SIZE_VALUE = -0.5  # value index contribution when the size band is blank
UNKNOWN_SIZE_BUDGET = 30_000.0  # CNY; budget median assumed when the size band is blank


@dataclass(frozen=True)
class LeadVocabulary:
    """The categories of ``GeneratorConfig`` flattened into arrays indexed by category code."""

    channels: tuple[str, ...]
    channel_weight: np.ndarray
    channel_drift_weight: np.ndarray
    channel_quality: np.ndarray
    channel_size_tilt: np.ndarray
    channel_budget_declared: np.ndarray
    channel_existing: np.ndarray
    channel_never_contacted: np.ndarray
    channel_campaign_missing: np.ndarray
    intake_type: tuple[str, ...]
    intake_has_rep: np.ndarray
    campaigns: tuple[str, ...]
    campaign_channel: np.ndarray
    campaign_weight: np.ndarray
    campaign_quality: np.ndarray
    keywords: tuple[str, ...]
    keyword_campaign: np.ndarray
    keyword_weight: np.ndarray
    keyword_quality: np.ndarray
    regions: tuple[str, ...]
    region_weight: np.ndarray
    region_quality: np.ndarray
    region_cities: tuple[tuple[str, ...], ...]
    industries: tuple[str, ...]
    industry_weight: np.ndarray
    industry_quality: np.ndarray
    industry_order_value: np.ndarray
    industry_repeat_rate: np.ndarray
    industry_name_word: tuple[str, ...]
    sizes: tuple[str, ...]
    size_weight: np.ndarray
    size_quality: np.ndarray
    size_value: np.ndarray
    size_budget_median: np.ndarray
    size_dwell_factor: np.ndarray
    titles: tuple[str, ...]
    title_weight: np.ndarray
    title_quality: np.ndarray

    @classmethod
    def from_config(cls, config: GeneratorConfig) -> LeadVocabulary:
        channels = config.channels
        campaigns: list[str] = []
        campaign_channel: list[int] = []
        campaign_weight: list[float] = []
        campaign_quality: list[float] = []
        keywords: list[str] = []
        keyword_campaign: list[int] = []
        keyword_weight: list[float] = []
        keyword_quality: list[float] = []
        for channel_code, channel in enumerate(channels.values()):
            for campaign_name, campaign in channel.campaigns.items():
                campaign_code = len(campaigns)
                campaigns.append(campaign_name)
                campaign_channel.append(channel_code)
                campaign_weight.append(campaign.weight)
                campaign_quality.append(campaign.quality)
                for keyword_name, keyword in campaign.keywords.items():
                    keywords.append(keyword_name)
                    keyword_campaign.append(campaign_code)
                    keyword_weight.append(keyword.weight)
                    keyword_quality.append(keyword.quality)

        def floats(values: list[float]) -> np.ndarray:
            return np.asarray(values, dtype=np.float64)

        return cls(
            channels=tuple(channels),
            channel_weight=floats([spec.weight for spec in channels.values()]),
            channel_drift_weight=floats([spec.drift_weight for spec in channels.values()]),
            channel_quality=floats([spec.quality for spec in channels.values()]),
            channel_size_tilt=floats([spec.size_tilt for spec in channels.values()]),
            channel_budget_declared=floats([spec.budget_declared for spec in channels.values()]),
            channel_existing=floats([spec.existing_customer for spec in channels.values()]),
            channel_never_contacted=floats([spec.never_contacted for spec in channels.values()]),
            channel_campaign_missing=floats([spec.campaign_missing for spec in channels.values()]),
            intake_type=tuple(spec.intake_activity for spec in channels.values()),
            intake_has_rep=np.asarray([spec.intake_has_rep for spec in channels.values()], dtype=bool),
            campaigns=tuple(campaigns),
            campaign_channel=np.asarray(campaign_channel, dtype=np.int64),
            campaign_weight=floats(campaign_weight),
            campaign_quality=floats(campaign_quality),
            keywords=tuple(keywords),
            keyword_campaign=np.asarray(keyword_campaign, dtype=np.int64),
            keyword_weight=floats(keyword_weight),
            keyword_quality=floats(keyword_quality),
            regions=tuple(config.regions),
            region_weight=floats([spec.weight for spec in config.regions.values()]),
            region_quality=floats([spec.quality for spec in config.regions.values()]),
            region_cities=tuple(spec.cities for spec in config.regions.values()),
            industries=tuple(config.industries),
            industry_weight=floats([spec.weight for spec in config.industries.values()]),
            industry_quality=floats([spec.quality for spec in config.industries.values()]),
            industry_order_value=floats([spec.order_value for spec in config.industries.values()]),
            industry_repeat_rate=floats([spec.repeat_rate for spec in config.industries.values()]),
            industry_name_word=tuple(spec.name_word for spec in config.industries.values()),
            sizes=tuple(config.sizes),
            size_weight=floats([spec.weight for spec in config.sizes.values()]),
            size_quality=floats([spec.quality for spec in config.sizes.values()]),
            size_value=floats([spec.value for spec in config.sizes.values()]),
            size_budget_median=floats([spec.budget_median for spec in config.sizes.values()]),
            size_dwell_factor=floats([spec.dwell_factor for spec in config.sizes.values()]),
            titles=tuple(config.titles),
            title_weight=floats([spec.weight for spec in config.titles.values()]),
            title_quality=floats([spec.quality for spec in config.titles.values()]),
        )


@dataclass
class LeadBatch:
    """The intake attributes and latent traits of one chunk of leads; codes of -1 are blank."""

    index: np.ndarray  # 0-based lead number
    created_at: np.ndarray
    drift: np.ndarray
    channel: np.ndarray
    campaign: np.ndarray
    keyword: np.ndarray
    region: np.ndarray
    industry: np.ndarray
    size: np.ndarray
    budget: np.ndarray  # CNY, NaN when not stated
    existing_customer: np.ndarray
    title: np.ndarray
    company_name: np.ndarray
    quality: np.ndarray
    engagement: np.ndarray
    value: np.ndarray

    size_budget: np.ndarray  # median budget of the size band, CNY

    def __len__(self) -> int:
        return len(self.index)


def draw_leads(
    config: GeneratorConfig,
    vocabulary: LeadVocabulary,
    random: CounterRandom,
    index: np.ndarray,
    created_at: np.ndarray,
    drift: np.ndarray,
) -> LeadBatch:
    """Draw the intake attributes and latent traits of the leads numbered ``index``."""
    channel = _draw_channel(vocabulary, random, index, drift)
    campaign = _draw_campaign(vocabulary, random, index, channel)
    keyword = _draw_keyword(vocabulary, random, index, campaign)
    region = random.categorical(Stream.REGION, index, vocabulary.region_weight)
    industry = _with_blanks(
        random.categorical(Stream.INDUSTRY, index, vocabulary.industry_weight),
        random.bernoulli(Stream.INDUSTRY_MISSING, index, config.industry_missing),
    )
    size = _draw_size(config, vocabulary, random, index, channel)
    budget = _draw_budget(config, vocabulary, random, index, channel, size)
    existing = random.bernoulli(Stream.EXISTING_CUSTOMER, index, vocabulary.channel_existing[channel])
    title = _with_blanks(
        random.categorical(Stream.TITLE, index, vocabulary.title_weight),
        random.bernoulli(Stream.TITLE, index, config.title_missing, draw=1),
    )

    median = _size_budget(vocabulary, size)
    quality = _latent_quality(config, vocabulary, random, index, channel, campaign, keyword, region)
    quality += _profile_quality(config, vocabulary, industry, size, title, budget, median, existing)
    engagement = config.engagement_quality_weight * quality + config.engagement_noise * random.normal(
        Stream.ENGAGEMENT, index
    )
    value = _value_index(config, vocabulary, size, budget)

    return LeadBatch(
        index=index,
        created_at=created_at,
        drift=drift,
        channel=channel,
        campaign=campaign,
        keyword=keyword,
        region=region,
        industry=industry,
        size=size,
        budget=budget,
        existing_customer=existing,
        title=title,
        company_name=_company_names(vocabulary, random, index, region, industry),
        quality=quality,
        engagement=engagement,
        value=value,
        size_budget=median,
    )


def _size_budget(vocabulary: LeadVocabulary, size: np.ndarray) -> np.ndarray:
    return np.where(size >= 0, vocabulary.size_budget_median[np.maximum(size, 0)], UNKNOWN_SIZE_BUDGET)


def _with_blanks(codes: np.ndarray, blank: np.ndarray) -> np.ndarray:
    return np.where(blank, MISSING, codes)


def _draw_channel(
    vocabulary: LeadVocabulary, random: CounterRandom, index: np.ndarray, drift: np.ndarray
) -> np.ndarray:
    base = vocabulary.channel_weight / vocabulary.channel_weight.sum()
    drifted = vocabulary.channel_drift_weight / vocabulary.channel_drift_weight.sum()
    weights = (1.0 - drift)[:, None] * base[None, :] + drift[:, None] * drifted[None, :]
    return random.categorical(Stream.CHANNEL, index, weights)


def _draw_campaign(
    vocabulary: LeadVocabulary, random: CounterRandom, index: np.ndarray, channel: np.ndarray
) -> np.ndarray:
    campaign = np.full(len(index), MISSING, dtype=np.int64)
    uniforms = random.uniform(Stream.CAMPAIGN, index)
    blank = random.bernoulli(Stream.CAMPAIGN, index, vocabulary.channel_campaign_missing[channel], draw=1)
    for channel_code in range(len(vocabulary.channels)):
        codes = np.flatnonzero(vocabulary.campaign_channel == channel_code)
        rows = np.flatnonzero((channel == channel_code) & ~blank)
        if len(codes) == 0 or len(rows) == 0:
            continue
        cumulative = np.cumsum(vocabulary.campaign_weight[codes])
        picks = np.searchsorted(cumulative / cumulative[-1], uniforms[rows], side="right")
        campaign[rows] = codes[np.minimum(picks, len(codes) - 1)]
    return campaign


def _draw_keyword(
    vocabulary: LeadVocabulary, random: CounterRandom, index: np.ndarray, campaign: np.ndarray
) -> np.ndarray:
    keyword = np.full(len(index), MISSING, dtype=np.int64)
    uniforms = random.uniform(Stream.KEYWORD, index)
    for campaign_code in np.unique(vocabulary.keyword_campaign):
        codes = np.flatnonzero(vocabulary.keyword_campaign == campaign_code)
        rows = np.flatnonzero(campaign == campaign_code)
        if len(rows) == 0:
            continue
        cumulative = np.cumsum(vocabulary.keyword_weight[codes])
        picks = np.searchsorted(cumulative / cumulative[-1], uniforms[rows], side="right")
        keyword[rows] = codes[np.minimum(picks, len(codes) - 1)]
    return keyword


def _draw_size(
    config: GeneratorConfig,
    vocabulary: LeadVocabulary,
    random: CounterRandom,
    index: np.ndarray,
    channel: np.ndarray,
) -> np.ndarray:
    band = np.arange(len(vocabulary.sizes), dtype=np.float64) - (len(vocabulary.sizes) - 1) / 2.0
    tilt = vocabulary.channel_size_tilt[channel]
    weights = vocabulary.size_weight[None, :] * np.exp(tilt[:, None] * band[None, :])
    return _with_blanks(
        random.categorical(Stream.SIZE, index, weights),
        random.bernoulli(Stream.SIZE_MISSING, index, config.size_missing),
    )


def _draw_budget(
    config: GeneratorConfig,
    vocabulary: LeadVocabulary,
    random: CounterRandom,
    index: np.ndarray,
    channel: np.ndarray,
    size: np.ndarray,
) -> np.ndarray:
    declared = random.bernoulli(Stream.BUDGET_DECLARED, index, vocabulary.channel_budget_declared[channel])
    median = _size_budget(vocabulary, size)
    amount = random.lognormal(Stream.BUDGET_AMOUNT, index, median, config.budget_sigma)
    rounded = np.maximum(np.rint(amount / 1000.0), 1.0) * 1000.0  # people state round thousands
    return np.where(declared, rounded, np.nan)


def _latent_quality(
    config: GeneratorConfig,
    vocabulary: LeadVocabulary,
    random: CounterRandom,
    index: np.ndarray,
    channel: np.ndarray,
    campaign: np.ndarray,
    keyword: np.ndarray,
    region: np.ndarray,
) -> np.ndarray:
    """Return the channel, campaign, keyword and region effects plus unexplained noise."""
    quality = vocabulary.channel_quality[channel] + vocabulary.region_quality[region]
    quality += np.where(campaign >= 0, vocabulary.campaign_quality[np.maximum(campaign, 0)], 0.0)
    if len(vocabulary.keywords):
        quality += np.where(keyword >= 0, vocabulary.keyword_quality[np.maximum(keyword, 0)], 0.0)
    result: np.ndarray = quality + config.quality_noise * random.normal(Stream.QUALITY_NOISE, index)
    return result


def _profile_quality(
    config: GeneratorConfig,
    vocabulary: LeadVocabulary,
    industry: np.ndarray,
    size: np.ndarray,
    title: np.ndarray,
    budget: np.ndarray,
    median: np.ndarray,
    existing: np.ndarray,
) -> np.ndarray:
    """Return the effects of what the lead states about itself."""
    quality = np.zeros(len(industry), dtype=np.float64)
    for codes, effects in (
        (industry, vocabulary.industry_quality),
        (size, vocabulary.size_quality),
        (title, vocabulary.title_quality),
    ):
        quality += np.where(codes >= 0, effects[np.maximum(codes, 0)], config.missing_field_quality)
    declared = ~np.isnan(budget)
    ratio = np.clip(np.log(np.where(declared, budget, median) / median), -1.0, 1.0)
    quality += np.where(declared, config.budget_declared_quality + config.budget_ratio_quality * ratio, 0.0)
    quality += np.where(existing, config.existing_customer_quality, 0.0)
    return quality


def _value_index(
    config: GeneratorConfig, vocabulary: LeadVocabulary, size: np.ndarray, budget: np.ndarray
) -> np.ndarray:
    raw = np.where(size >= 0, vocabulary.size_value[np.maximum(size, 0)], UNKNOWN_SIZE_VALUE)
    declared = ~np.isnan(budget)
    budget_term = np.clip(
        np.log(np.where(declared, budget, VALUE_BUDGET_REFERENCE) / VALUE_BUDGET_REFERENCE), -2, 2
    )
    raw = raw + config.value_budget_weight * budget_term
    result: np.ndarray = 1.0 / (1.0 + np.exp(-raw))
    return result


def _company_names(
    vocabulary: LeadVocabulary,
    random: CounterRandom,
    index: np.ndarray,
    region: np.ndarray,
    industry: np.ndarray,
) -> np.ndarray:
    """Return names like 苏州恒达机械有限公司: a city of the region, a brand, an industry word."""
    city_uniform = random.uniform(Stream.COMPANY_CITY, index)
    cities = np.empty(len(index), dtype=object)
    for code, region_cities in enumerate(vocabulary.region_cities):
        rows = np.flatnonzero(region == code)
        picks = np.minimum((city_uniform[rows] * len(region_cities)).astype(np.int64), len(region_cities) - 1)
        cities[rows] = np.asarray(region_cities, dtype=object)[picks]
    brands = np.asarray(catalog.BRAND_WORDS, dtype=object)
    brand_code = np.minimum(
        (random.uniform(Stream.COMPANY_BRAND, index) * len(brands)).astype(np.int64), len(brands) - 1
    )
    words = np.asarray((*vocabulary.industry_name_word, catalog.GENERIC_NAME_WORD), dtype=object)
    word_code = np.where(industry >= 0, industry, len(words) - 1)
    result: np.ndarray = cities + brands[brand_code] + words[word_code] + catalog.COMPANY_SUFFIX
    return result
