"Package metadata comes from settings.ini (nbdev 2). Written without pkg_resources (gone in setuptools 82)."
from configparser import ConfigParser
import setuptools

cfg = ConfigParser(delimiters=['='])
cfg.read('settings.ini', encoding='utf-8')
cfg = cfg['DEFAULT']

def reqs(key): return cfg.get(key, '').split()

licenses = {'apache2': ('Apache Software License 2.0', 'OSI Approved :: Apache Software License')}
lic = licenses[cfg['license']]
statuses = ['1 - Planning', '2 - Pre-Alpha', '3 - Alpha', '4 - Beta', '5 - Production/Stable', '6 - Mature', '7 - Inactive']

setuptools.setup(
    name=cfg['lib_name'],
    version=cfg['version'],
    description=cfg['description'],
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    author=cfg['author'],
    author_email=cfg['author_email'],
    url=cfg['git_url'],
    license=lic[0],
    keywords=cfg['keywords'],
    classifiers=[f'Development Status :: {statuses[int(cfg["status"])]}', f'License :: {lic[1]}',
                 'Programming Language :: Python :: 3', 'Intended Audience :: Developers'],
    packages=setuptools.find_packages(include=['tinytrainer', 'tinytrainer.*']),
    include_package_data=True,
    package_data={'tinytrainer': ['assets/*']},
    python_requires=f'>={cfg["min_python"]}',
    install_requires=reqs('requirements'),
    extras_require={'demo': reqs('demo_requirements'), 'gym': reqs('gym_requirements'),
                    'bench': reqs('bench_requirements'),
                    'dev': reqs('dev_requirements')},
    entry_points={'console_scripts': cfg.get('console_scripts', '').split(),
                  'nbdev': [f'{cfg["lib_path"]}={cfg["lib_path"]}._modidx:d']},
    zip_safe=False,
)
