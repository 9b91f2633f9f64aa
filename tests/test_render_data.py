"""Shared data for the render tests: papers based on tests/data/hf_daily_papers.json, editions.

Imported by the other tests/test_render_*.py files (no tests of its own beyond a sanity check).
"""

from __future__ import annotations

import datetime as dt

from digest.models import Author, Edition, Keyword, Match, Paper, ScoredPaper, Subscription
from digest.rank.explain import trending_why, why_line

UTC = dt.timezone.utc
DAY = dt.date(2026, 11, 21)  # a Saturday
NOW = dt.datetime(2026, 11, 21, 6, 30, tzinfo=UTC)
SENDER = "Paper Digest <digest@example.org>"
UNSUB = "https://digest.example.org/unsubscribe/3f9c2a7d1e?s=alice&t=abc123"


def _authors(names: list[str]) -> tuple[Author, ...]:
    return tuple(Author(n) for n in names)


PAPERS: tuple[Paper, ...] = (
    Paper(
        key='arxiv:2508.19281',
        title='Improving Low-Resource Translation with Dictionary-Guided Fine-Tuning and RL: A Spanish-to-Wayuunaiki Study',
        abstract=('Low-resource machine translation remains a significant challenge for large language models (LLMs), which often lack exposure to these languages during pretraining and have limited parallel data for fine-tuning. We propose a novel approach that enhances translation for low-resource languages by integrating an external dictionary tool and training models end-to-end using reinforcement learning, in addition to supervised fine-tuning. Focusing on the Spanish-Wayuunaiki language pair, we frame translation as a tool-augmented decision-making problem in which the model can selectively consult a bilingual dictionary during generation. Our m'),
        authors=_authors(['José Ángel Muñoz', 'Zoë Pérez-Ibáñez', 'Łukasz Wiśniewski', 'Nguyễn Thị Hương']),
        url='https://huggingface.co/papers/2508.19281',
        arxiv_id='2508.19281',
        published=dt.datetime(2025, 8, 26, 21, 14, tzinfo=UTC),
        upvotes=5,
        comments=3,
        ai_summary='Combining supervised instruction tuning with GRPO and a bilingual dictionary tool improves Spanish-to-Wayuunaiki translation.',
    ),
    Paper(
        key='arxiv:2410.10972',
        title='Adapt-$\\infty$: Scalable Lifelong Multimodal Instruction Tuning via Dynamic Data Selection',
        abstract=('Visual instruction datasets from various distributors are released at different\ntimes and often contain a significant number of semantically redundant\ntext-image pairs, depending on their task compositions (i.e., skills) or\nreference sources. This redundancy greatly limits the efficient deployment of\nlifelong adaptable multimodal large language models, hindering their ability to\nrefine existing skills and acquire new competencies over time. To address this,\nwe reframe the problem of Lifelong Instruction Tuning (LiIT) via data\nselection, where the model automatically selects beneficial samples to learn\nfrom earlier and new datasets b'),
        authors=_authors(['Seo-yeon Han', 'Jonas Richter', 'Farah Siddiqui', "Michael O'Connor"]),
        url='https://huggingface.co/papers/2410.10972',
        arxiv_id='2410.10972',
        published=dt.datetime(2024, 10, 14, 17, 59, tzinfo=UTC),
        upvotes=9,
        comments=0,
        project_page='https://example.org/adapt-infinity',
        ai_summary='Adapt-$\\infty$ dynamically selects and prunes multimodal instruction data per skill cluster so lifelong instruction tuning stays efficient and forgets less.',
    ),
    Paper(
        key='arxiv:2510.01135',
        title='Prompt Curriculum Learning for Efficient LLM Post-Training',
        abstract=('We introduce Prompt Curriculum Learning (PCL), a lightweight reinforcement learning (RL) algorithm that selects intermediate-difficulty prompts using a learned value model to post-train language models. Since post-training LLMs via RL remains sensitive to batching and prompt selection strategies, we first conduct a series of systematic experiments where we (1) determine the optimal training batch size that balances generation efficiency and gradient quality and (2) establish the importance of focusing on prompts of intermediate difficulty for the policy. We build upon these results to design PCL, which identifies prompts of intermed'),
        authors=_authors(['Owen Fitzgerald', 'Julia Hartmann', 'Samuel Adeyemi', 'Nadia Petrova', 'Ethan Cho', 'Marta Kovacs', 'Benjamin Ortiz']),
        url='https://huggingface.co/papers/2510.01135',
        arxiv_id='2510.01135',
        published=dt.datetime(2025, 10, 1, 15, 3, tzinfo=UTC),
        upvotes=12,
        comments=0,
    ),
    Paper(
        key='arxiv:2509.25810',
        title='Learning to Reason as Action Abstractions with Scalable Mid-Training RL',
        abstract=('Large language models excel with reinforcement learning (RL), but fully unlocking this potential requires a mid-training stage. An effective mid-training phase should identify a compact set of useful actions and enable fast selection among them through online RL. We formalize this intuition by presenting the first theoretical result on how mid-training shapes post-training: it characterizes an action subspace that minimizes both the value approximation error from pruning and the RL error during subsequent planning. Our analysis reveals two key determinants of mid-training effectiveness: pruning efficiency, which shapes the prior of '),
        authors=_authors(['Nathaniel Brooks', 'Sofia Marchetti', 'Arjun Mehta', 'Leah Goldberg', 'Victor Almeida', 'Imogen Clarke']),
        url='https://huggingface.co/papers/2509.25810',
        arxiv_id='2509.25810',
        published=dt.datetime(2025, 9, 30, 17, 59, tzinfo=UTC),
        upvotes=2,
        comments=0,
        organization='Apple',
        ai_summary='RA3 is a mid-training algorithm that learns temporally consistent action abstractions via RL, improving code-generation performance and RLVR convergence.',
    ),
    Paper(
        key='arxiv:2510.03222',
        title='Low-probability Tokens Sustain Exploration in Reinforcement Learning with Verifiable Reward',
        abstract=('Reinforcement Learning with Verifiable Rewards (RLVR) has propelled Large Language Models in complex reasoning, yet its scalability is often hindered by a training bottleneck where performance plateaus as policy entropy collapses, signaling a loss of exploration. Previous methods typically address this by maintaining high policy entropy, yet the precise mechanisms that govern meaningful exploration have remained underexplored. Our analysis suggests that an unselective focus on entropy risks amplifying irrelevant tokens and destabilizing training. This paper investigates the exploration dynamics within RLVR and identifies a key issue'),
        authors=_authors(['Haoran Qiu', 'Xinyi Feng', 'Jiahao Luo', 'Yutong Shen', 'Zhiwei Gao', 'Ruoxi Deng', 'Kaiyuan Mo', 'Shuying Pan', 'Boyang Xie']),
        url='https://huggingface.co/papers/2510.03222',
        arxiv_id='2510.03222',
        published=dt.datetime(2025, 10, 3, 17, 40, tzinfo=UTC),
        upvotes=2,
        comments=1,
        github_repo='https://github.com/CarlanLark/Lp-Reg',
        github_stars=0,
        organization='Tencent',
        ai_summary='Low-probability Regularization keeps rare but useful exploratory tokens alive during RLVR, avoiding entropy collapse and improving math reasoning accuracy.',
    ),
    Paper(
        key='arxiv:2510.06084',
        title='Spectrum Tuning: Post-Training for Distributional Coverage and In-Context Steerability',
        abstract=('Language model post-training has enhanced instruction-following and performance\non many downstream tasks, but also comes with an often-overlooked cost on tasks\nwith many possible valid answers. We characterize three desiderata for\nconditional distributional modeling: in-context steerability, valid output\nspace coverage, and distributional alignment, and document across three model\nfamilies how current post-training can reduce these properties. In particular,\nwe disambiguate between two kinds of in-context learning: ICL for eliciting\nexisting underlying knowledge or capabilities, and in-context steerability,\nwhere a model must use in'),
        authors=_authors(['Eleanor Park', 'Rafael Souza', 'Ingrid Solberg', 'Tomasz Nowak', 'Aisha Rahman', 'Lucas Moreau', 'Mei Lin Tan', 'Gabriel Costa']),
        url='https://huggingface.co/papers/2510.06084',
        arxiv_id='2510.06084',
        published=dt.datetime(2025, 10, 7, 16, 12, tzinfo=UTC),
        upvotes=41,
        comments=2,
        github_repo='https://github.com/example-lab/spectrum-tuning',
        github_stars=58,
        ai_summary='Spectrum Suite and Spectrum Tuning measure and improve in-context steerability, output-space coverage and distributional alignment that standard post-training tends to reduce.',
    ),
    Paper(
        key='arxiv:2510.07312',
        title='h1: Bootstrapping LLMs to Reason over Longer Horizons via Reinforcement Learning',
        abstract=('Large language models excel at short-horizon reasoning tasks, but performance\ndrops as reasoning horizon lengths increase. Existing approaches to combat this\nrely on inference-time scaffolding or costly step-level supervision, neither of\nwhich scales easily. In this work, we introduce a scalable method to bootstrap\nlong-horizon reasoning capabilities using only existing, abundant short-horizon\ndata. Our approach synthetically composes simple problems into complex,\nmulti-step dependency chains of arbitrary length. We train models on this data\nusing outcome-only rewards under a curriculum that automatically increases in\ncomplexity, al'),
        authors=_authors(['Priya Raman', 'Daniel Okafor', 'Hannah Lindqvist', 'Mateo Ferreira', 'Yusuf Demir', 'Clara Becker', 'Kenji Watanabe', 'Amara Nwosu']),
        url='https://huggingface.co/papers/2510.07312',
        arxiv_id='2510.07312',
        published=dt.datetime(2025, 10, 8, 17, 58, tzinfo=UTC),
        upvotes=74,
        comments=4,
        project_page='https://example.org/h1-longer-horizons',
        ai_summary='Composing short-horizon math problems into long dependency chains and training with outcome-only rewards under an automatic curriculum improves long-horizon reasoning of LLMs.',
    ),
    Paper(
        key='arxiv:2411.15893',
        title='TÜLU 3: Pushing Frontiers in Open Language Model Post-Training',
        abstract=('Language model post-training is applied to refine behaviors and unlock new skills across a wide range of recent language models, but open recipes for applying these techniques lag behind proprietary ones. The underlying training data and recipes for post-training are simultaneously the most important pieces of the puzzle and the portion with the least transparency. To bridge this gap, we introduce T\\"ULU 3, a family of fully-open state-of-the-art post-trained models, alongside its data, code, and training recipes, serving as a comprehensive guide for modern post-training techniques. T\\"ULU 3, which builds on Llama 3.1 base models, a'),
        authors=_authors(['Adele Abernathy', 'Bruno Bianchi', 'Chiara Castellano', 'Dmitri Dvorak', 'Esme Eriksen', 'Farid Fontaine', 'Greta Gallagher', 'Hiroshi Holm', 'Isla Ivanova', 'Jakob Jensen', 'Kavya Kowalski', 'Liam Lefèvre', 'Maya Morrison', 'Nils Novak', 'Olga Oyelaran', 'Pavel Pham', 'Quinn Quintero', 'Renée Rossi', 'Søren Dahl', 'Tara Takahashi', 'Umar Ueda', 'Vera Varga', 'Wen Whitaker']),
        url='https://huggingface.co/papers/2411.15893',
        arxiv_id='2411.15893',
        published=dt.datetime(2024, 11, 22, 18, 44, tzinfo=UTC),
        upvotes=3,
        comments=6,
        github_repo='https://github.com/example-lab/tulu3-recipes',
        github_stars=3412,
        ai_summary='An open post-training recipe (SFT, DPO and RLVR) with released data, code and evaluation suite for Llama 3.1-based models.',
    ),
)
BY_ID = {p.arxiv_id: p for p in PAPERS}

KEYWORD_READER = Subscription(
    id="alice",
    email="alice@example.org",
    name="Zoë Pérez-Ibáñez",
    timezone="Europe/Berlin",
    send_at=dt.time(7, 30),
    keywords=(Keyword("reinforcement learning"), Keyword("post-training"), Keyword("RL")),
    max_papers=5,
)
TRENDING_READER = Subscription(
    id="bob",
    email="bob@example.net",
    name=None,
    timezone="America/New_York",
    send_at=dt.time(6, 0),
    frequency="weekdays",
)
EMPTY_READER = Subscription(
    id="carol",
    email="carol@example.com",
    name="Carol Smith",
    timezone="Asia/Tokyo",
    send_at=dt.time(8, 15),
    frequency="weekly:mon",
    keywords=(Keyword("graph neural networks"), Keyword("molecule generation")),
    send_empty=True,
)

RL = Match("RL", "title", 1, ("RL",))
RLEARN = Match(
    "reinforcement learning", "abstract", 2, ("reinforcement learning", "Reinforcement Learning")
)
POST = Match("post-training", "title", 1, ("Post-Training", "post-training", "post-train"))


def scored(paper: Paper, score: float, *matches: Match, why: str | None = None) -> ScoredPaper:
    """A ranked paper with the why line the ranker would write for these matches (strongest
    first, as given), or for a trending paper."""
    if why is None:
        by_term: dict[str, list[Match]] = {}
        for m in matches:
            by_term.setdefault(m.term, []).append(m)
        why = why_line(list(by_term), by_term, paper) if matches else trending_why(paper)
    return ScoredPaper(paper, score, matches, why)


def keyword_edition() -> Edition:
    """5 shown papers with highlights, 18 more (15 listed, "and 3 more")."""
    shown = (
        scored(BY_ID["2510.03222"], 9.1, RLEARN, Match("RL", "summary", 1, ("RLVR",))),
        scored(BY_ID["2510.07312"], 8.7, RLEARN),
        scored(BY_ID["2508.19281"], 7.9, RL, RLEARN),
        scored(BY_ID["2411.15893"], 7.2, POST),
        scored(BY_ID["2510.06084"], 6.8, POST),
    )
    more = tuple(
        scored(
            Paper(
                key=f"arxiv:2511.{i:05d}",
                title=f"Scaling RL for Agents, Part {i}: Post-Training Recipes",
                url=f"https://arxiv.org/abs/2511.{i:05d}",
            ),
            5.0 - i / 10,
            RL,
        )
        for i in range(1, 19)
    )
    return Edition(KEYWORD_READER, DAY, shown, more=len(more), more_papers=more)


def trending_edition() -> Edition:
    papers = (
        scored(BY_ID["2510.07312"], 74),
        scored(BY_ID["2510.06084"], 41),
        scored(BY_ID["2410.10972"], 9),
        scored(BY_ID["2510.01135"], 12),
        scored(BY_ID["2509.25810"], 2),
    )
    return Edition(TRENDING_READER, DAY, papers)


def empty_edition() -> Edition:
    return Edition(EMPTY_READER, DAY, ())


CASES = {
    "keyword": keyword_edition,
    "trending": trending_edition,
    "empty": empty_edition,
}


def test_data_is_consistent() -> None:
    assert len(BY_ID) == len(PAPERS) == 8
    assert keyword_edition().more == 18
